"""The rules: pure (values in, values out, the time a parameter) geometry, windows, world index,
fix filters and the geofence, parking and trip rules, run by :class:`~cloud.rules.engine.Engine`.

Public modules: :mod:`cloud.rules.engine` (evaluate, tick, re-evaluate), :mod:`cloud.rules.world`
(the indexed snapshot of zones, lots, routes, trips and assets), :mod:`cloud.rules.objects`
(what their properties say), :mod:`cloud.rules.events`, :mod:`cloud.rules.state`,
:mod:`cloud.rules.config` (thresholds), :mod:`cloud.rules.windows`, :mod:`cloud.rules.geometry`.
"""
