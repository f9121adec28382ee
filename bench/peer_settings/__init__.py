"""Settings modules that add a peer ORM cache to the project (the peers scenario, bench/peers.py).

Each imports the project's settings and adds one peer, configured as its documentation
recommends, on the bench's Redis cache db; the project's own cache is switched off by the
scenario (CACHE_ENABLED=0), so every endpoint runs its selector through the ORM and the peer.
`counting` counts the peer's cache reads for the scenario's hit rate. Benchmark only.
"""
