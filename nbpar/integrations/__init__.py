"""Thin layers that bring nbpar's pool to where parallel work already happens in notebooks:
scikit-learn's `n_jobs` (joblib_backend), pandas' `apply` (pandas_accessor) and tqdm's
`process_map` (tqdm_compat). Each imports its library only when used, and reaches the
engine through the public pool API only.
"""
