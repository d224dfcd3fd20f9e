"""Trainers. Importing this package imports every module in it, which registers every method.

Each method module holds an engine-independent method class (``CRoFTMethod``, ...) decorated with
:func:`~croft.engine.registration.register_method`, which generates the croft trainer
``Method + TrainerBase`` and lists the method for ``croft.dassl_bridge``. A new method is one new
module here: nothing lists it. :data:`METHODS` maps each registered name to its method class.
"""
import importlib
import pkgutil

from ..engine.registration import method_classes

for _module in sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_module}")

#: Registered trainer name -> its engine-independent method class (the methods of croft/trainers/;
#: :func:`croft.engine.registration.method_classes` also lists those registered elsewhere later).
METHODS = method_classes()
