"""Running Dealflow: the local stack, the runner of prefect.yaml's deployments,
registering them on a server, and the demo mail catcher."""
