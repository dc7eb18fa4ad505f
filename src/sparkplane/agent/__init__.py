"""The session agent: the program inside an interactive session's driver (see README.md)."""
