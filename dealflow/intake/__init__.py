"""Won deals coming in: validating and storing a deal, starting its run, files of
deals, who may send them over HTTP, and what a deal's status says back."""
