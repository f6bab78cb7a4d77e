"""The demo's fixture files, installed as package data `stalk.embedded.demo.fixtures` (see setup.py)."""
