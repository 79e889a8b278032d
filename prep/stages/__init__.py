"""The pipeline stages, one module each: the stage's pure function beside its frozen config dataclass.

In the order a profile runs them: :mod:`~prep.stages.downmix`, :mod:`~prep.stages.measure`,
:mod:`~prep.stages.resample`, :mod:`~prep.stages.denoise`, :mod:`~prep.stages.trim`,
:mod:`~prep.stages.slice`, :mod:`~prep.stages.loudness`, :mod:`~prep.stages.score`.
"""
