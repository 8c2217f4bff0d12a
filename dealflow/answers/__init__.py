"""Answers from outside to a deal's waiting run: the customer's acceptance, a
settled deal, a stage reported done, a confirmed delivery plan."""
