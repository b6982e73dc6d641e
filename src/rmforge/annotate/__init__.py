"""Annotation stage: Label Studio projects, tasks and results, aggregation and agreement (issue 8).

Modules: ``configs`` (labelling XML), ``tasks`` (samples -> tasks, randomised A/B order),
``server`` (a local Label Studio), ``client`` (SDK calls with clear errors), ``pull``
(export -> samples, aggregation), ``aggregate`` (majority vote, Dawid-Skene) and
``agreement`` (kappas, Krippendorff's alpha, position bias). Importing this package never
imports torch, and the Label Studio SDK is imported only when a server is contacted.
"""
