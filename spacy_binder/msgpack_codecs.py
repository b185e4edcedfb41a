"""srsly's msgpack codecs, looked up once instead of on every (de)serialization.

srsly rebuilds its list of msgpack encoders and decoders on each call of
`msgpack_dumps`/`msgpack_loads`, by scanning every function catalogue has
registered (all of spaCy's and thinc's) and every installed entry point. A
DocBin makes two such calls per Doc with span groups, so reading a corpus
(`spacy train`, `init-config`, the converters writing one) spent about 90% of
its time there: CoNLL-2003 train, 14,041 Docs, took 26.5 s to read. The lists
are now kept until anything new is registered anywhere (catalogue's registry
grows), which gives the same codecs: entry points are read when a list is built.
"""
from typing import Any, Callable, Dict

import catalogue
from srsly.msgpack import msgpack_decoders, msgpack_encoders


def _kept_until_registry_grows(get_all: Callable[[], Dict[str, Any]]) -> Callable[[], Dict[str, Any]]:
    kept: Dict[str, Any] = {}
    size = -1

    def get_all_kept() -> Dict[str, Any]:
        nonlocal size
        if len(catalogue.REGISTRY) != size:
            kept.clear()
            kept.update(get_all())
            size = len(catalogue.REGISTRY)
        return dict(kept)

    get_all_kept.kept = True
    return get_all_kept


def keep_msgpack_codecs() -> None:
    """Make srsly's codec lists lookups cheap, for this process (idempotent)."""
    for registry in (msgpack_encoders, msgpack_decoders):
        if not getattr(registry.get_all, "kept", False):
            registry.get_all = _kept_until_registry_grows(registry.get_all)
