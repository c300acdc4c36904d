"""Golden histories of the pure decision core (see ``record.py``)."""
