"""`python -m bench`: the ingest benchmark (Tocsin next to Debian's Alertmanager, fed by wrk).

The others run on their own: `python -m bench.paging` (alert to first page, engine timers/s),
`python -m bench.status` (status page), `python -m bench.monitors` (HTTP checks), `python -m bench.triage`
(filtering a storm's alerts).
"""

from bench.ingest import main

raise SystemExit(main())
