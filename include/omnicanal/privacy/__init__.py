"""The data subject's rights (LGPD art. 18): erasure through identity, and the erasure
register that keeps erased people out of later loads. See :mod:`.erasure`,
:mod:`.register` and :mod:`.cli` (``omnicanal privacy …``)."""
