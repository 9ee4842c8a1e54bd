"""Our access to Confluence, on top of atlassian-python-api (no Dagster in here): ``client`` makes the
requests, ``responses`` reads what comes back, ``cql`` and ``keys`` build and validate what is sent."""
