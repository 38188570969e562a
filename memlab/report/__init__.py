"""The sweep's report: its results as a paper would print them, over seeds, one job per file.

- numbers.py: trials that differ only by seed as one group, each metric its mean with a 95%
  interval and n, a model's groups in order of trainable parameters; the ROC curves of the
  headline membership signal;
- tables.py: the tables (registry tables, membership, utility, canaries), as text and as CSV;
- dynamics.py: with evaluation points, each group's numbers at every evaluated step, its
  onset step and best-utility checkpoint;
- figures.py: results.png, scale.png, roc.png, frontier.png (the privacy-utility frontier),
  dynamics.png (through training, with evaluation points);
- render.py: the files (results.csv, .md, .html, the figures) and what `memlab report` prints.
"""
