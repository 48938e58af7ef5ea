"""Performance benchmarks of the compendium (numbers go to benchmarks/REPORT.md, never into tests)."""


def save_rows(rows, out, extra_machine: str = ""):
    """Rows -> a table with the torch version and the machine (architecture, threads), saved to ``out``."""
    import platform

    import pandas as pd
    import torch

    from bilevel.io import save_table

    df = pd.DataFrame(rows)
    df["torch"] = torch.__version__
    df["machine"] = f"{platform.machine()} {torch.get_num_threads()} threads{extra_machine}"
    save_table(df, out)
    return df
