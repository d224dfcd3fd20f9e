"""One labelled image."""
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Datum:
    """An image path with its class and domain.

    ``label`` indexes the dataset's class names (-1 for images of no ID class);
    ``domain`` indexes the dataset's domains.
    """

    impath: str
    label: int = 0
    domain: int = 0
    classname: str = ""
    domainname: str = ""

    def check_exists(self, source=""):
        if not os.path.isfile(self.impath):
            where = f" (listed in {source})" if source else ""
            raise FileNotFoundError(f"image not found: {self.impath}{where}")
