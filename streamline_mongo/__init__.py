"""MongoDB store for Streamline: ``MongoStore`` and the ``mongodb://`` URL factory.

```python
from pymongo import AsyncMongoClient
from streamline_mongo import MongoStore, from_url

store = MongoStore(AsyncMongoClient(url, tz_aware=True)["app"])  # you close the client
store = from_url("mongodb://localhost:27017/app")                # store.close() closes it
await store.ensure_indexes(context_fields=("url",), auto_cleanup_days=30)
```

See docs/mongo.md for indexing, multi-tenant queries, cleanup strategies and
how mongomock (used by the test suite) differs from MongoDB.
"""

from ._url import from_url
from .store import MongoStore

__all__ = ["MongoStore", "from_url"]
