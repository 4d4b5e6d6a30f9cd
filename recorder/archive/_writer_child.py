"""``python -m recorder.archive._writer_child``: the archive writer process's entry point.

A module of its own, imported by nothing, so that ``-m`` never runs a module that the
package import already loaded (runpy warns about that, and the module would exist twice).
"""

from __future__ import annotations

import sys

from recorder.archive._writerproc import child_main

if __name__ == "__main__":
    child_main(sys.argv[1:])
