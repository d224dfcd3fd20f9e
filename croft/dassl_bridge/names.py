"""croft's trainers and their names in Dassl, read from their one registration (``register_method``)."""


def registered_methods():
    """Every :class:`~croft.engine.registration.MethodRegistration`, croft's own methods imported first."""
    from .. import trainers  # noqa: F401  (importing croft's trainers registers them)
    from ..engine.registration import registrations

    return registrations()


def dassl_names():
    """croft trainer name -> its name in Dassl's ``TRAINER_REGISTRY`` (``dassl_name`` of
    :func:`~croft.engine.registration.register_method`; prefixed where Dassl or CoOp has that name)."""
    return {r.name: r.dassl_name for r in registered_methods()}
