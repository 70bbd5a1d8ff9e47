"""The ``m0rank`` command line."""
