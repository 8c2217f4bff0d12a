"""Money received: payments, bank statements, finance's levers on the dunning
ladder (disputes, holds, write-offs) and whether a queued letter should still go."""
