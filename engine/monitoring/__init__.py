"""Monitoring: what a model was trained on (baseline profiles), what it is asked now
(window profiles read incrementally from an endpoint's payload log), and how far the
two have drifted (Kolmogorov-Smirnov, chi-squared, PSI, Jensen-Shannon, Wasserstein,
total variation, L-infinity; Evidently's verdicts), kept per monitor and window.

Imports: errors, store/, query/, registry/, endpoints/, features/ (numpy and scipy,
loaded when a profile or a drift is computed).
"""
