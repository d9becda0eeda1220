from ploomber.clients import SQLAlchemyClient


def get():
    return SQLAlchemyClient("sqlite:///data.db")
