"""The known weak-to-strong methods, each a module in the one method contract::

    python -m aarlab.w2s.methods.<name> --data-dir D --out predictions.json --seed S

``D`` is a task's ``public/`` directory (``task.json``, ``train_unlabel.jsonl``, ``test.jsonl``). Each method
trains the task's strong model (named in ``task.json``) from the weak teacher's soft labels and writes one
label index per line of ``test.jsonl``.

- ``vanilla``: cross entropy on the weak soft labels (``--hard``: on their argmax).
- ``confident``: only the most confident weak labels (``--keep`` share per class), as hard labels.
- ``logconf``: Burns et al.'s auxiliary confidence loss.
- ``bootstrap``: weak → intermediate-size model (cross-fitted on two halves) → strong.
- ``zeroshot``: the strong model's prior alone, no weak labels (class balance matched to the weak labels).
- ``configurable``: the components above as knobs in a ``--config`` JSON file (``_knobs.Knobs``; defaults are
  ``vanilla``), the search space of the ``search`` researcher (docs/search.md).
"""

# name shown in tables → (module, extra arguments)
KNOWN_METHODS: dict[str, tuple[str, tuple[str, ...]]] = {
    "vanilla": ("aarlab.w2s.methods.vanilla", ()),
    "vanilla-hard": ("aarlab.w2s.methods.vanilla", ("--hard",)),
    "confident": ("aarlab.w2s.methods.confident", ()),
    "logconf": ("aarlab.w2s.methods.logconf", ()),
    "bootstrap": ("aarlab.w2s.methods.bootstrap", ()),
    "zeroshot": ("aarlab.w2s.methods.zeroshot", ()),
    "configurable": ("aarlab.w2s.methods.configurable", ()),
}

__all__ = ["KNOWN_METHODS"]
