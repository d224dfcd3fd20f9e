"""Name -> class registries with decorator registration (as in Dassl/fvcore)."""


class Registry:
    """A mapping from names to objects, filled by ``@REGISTRY.register()``."""

    def __init__(self, kind):
        self.kind = kind
        self._entries = {}

    def register(self, name=None):
        def decorator(obj):
            key = name or obj.__name__
            if key in self._entries and self._entries[key] is not obj:
                raise KeyError(f"{self.kind} '{key}' is already registered")
            self._entries[key] = obj
            return obj

        return decorator

    def get(self, name):
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise KeyError(
                f"Unknown {self.kind} '{name}'. Registered {self.kind}s: {known}"
            )
        return self._entries[name]

    def names(self):
        return sorted(self._entries)

    def keys(self):
        """Names in registration order."""
        return list(self._entries)

    def __contains__(self, name):
        return name in self._entries
