"""Studies: reproduce the paper's Tables 1-3 and Figure 4 (plan, run, report, background jobs)."""
