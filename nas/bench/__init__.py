"""`nas bench`: controllers replayed on tabular benchmarks (NAS-Bench-201 and the macro table)."""

from nas.bench.tabular import (
    HV_REFERENCE,
    LOADERS,
    TABULAR_DEFAULTS,
    TEXTBOOK_REA,
    Table,
    format_bench,
    hypervolume_fraction,
    load_macro_table,
    load_nb201_table,
    load_table,
    nb201_values,
    run_bench,
    run_search,
    true_hypervolume,
)

__all__ = ["HV_REFERENCE", "LOADERS", "TABULAR_DEFAULTS", "TEXTBOOK_REA", "Table", "format_bench", "hypervolume_fraction",
           "load_macro_table", "load_nb201_table", "load_table", "nb201_values", "run_bench", "run_search", "true_hypervolume"]
