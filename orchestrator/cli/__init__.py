"""The CLI: a thin typer layer; TcpscenError becomes an exit code here and nowhere else."""
