"""All SQL lives here. Repositories take a SQLAlchemy Session; services own the transaction."""
