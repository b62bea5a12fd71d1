"""PostgreSQL store for Streamline: ``PostgresStore`` and the ``postgresql://`` URL factory.

```python
from streamline_postgres import PostgresStore, from_url

store = PostgresStore("postgresql://app@db/app")        # owns its pool: close() closes it
store = PostgresStore(my_pool, table="workflow_runs")   # your psycopg_pool.AsyncConnectionPool
store = from_url("postgresql://app@db/app?table=runs")  # the streamline.stores entry point
```

See docs/postgres.md for the schema, the driver choice and LISTEN/NOTIFY.
"""

from ._url import from_url
from .store import PostgresStore

__all__ = ["PostgresStore", "from_url"]
