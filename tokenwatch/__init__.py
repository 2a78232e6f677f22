"""What every stage of tokenwatch uses, and nothing of any stage.

``config`` (the settings), ``pan`` (the one PAN rule), ``postgres`` (finding PostgreSQL),
``ports``, ``stack_file`` (where the local stack's endpoints are written), and ``cli/`` (the
``tokenwatch`` command line: thin subcommands over the stage packages; the one part of this
package that imports them).
"""
