import sqlite3

from ploomber.clients import DBAPIClient


def get_client():
    return DBAPIClient(sqlite3.connect, dict(database="data.db"), split_source=";")
