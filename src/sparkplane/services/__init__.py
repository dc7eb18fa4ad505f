"""Use cases. Every role (api, worker, watchers, cli) calls these; they own transactions and call backends."""
