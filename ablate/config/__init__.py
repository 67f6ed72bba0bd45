"""The trial config: its typed schema (``_schema``), defaults, YAML loading, overrides and merging (``_resolve``),
and every check a config passes before any work, in order (``_check``: fields, components, then what the chosen
components make together, built on the meta device).

The public names are re-exported by :mod:`ablate`; modules here import nothing from the trial path but the
networks ``_check`` builds on the meta device.
"""
