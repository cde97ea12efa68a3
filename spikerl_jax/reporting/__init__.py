"""A run's records and what is computed from them: run directories (CSV, TensorBoard,
summary), energy and carbon, spike activity, comparisons, plots and the progress bar."""
