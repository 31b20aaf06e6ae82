"""Imported by the ingest forkserver only (its preload list): the forkserver dies with the ingest that started it.

Importing this anywhere else would tie that process to its parent: nothing but the forkserver imports it.
"""

from distillguard.ingest._lifeline import die_with_parent

die_with_parent()
