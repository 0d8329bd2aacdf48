"""`python -m bench`: the ingest benchmark (Tocsin next to Debian's Alertmanager, fed by wrk)."""

from bench.ingest import main

raise SystemExit(main())
