import sqlite3

from ploomber.clients import DBAPIClient


def connect():
    return DBAPIClient(sqlite3.connect, dict(database="squares.db"), split_source=";")
