"""Real text corpora the simulator and the text models are built from (installed packages, never downloaded)."""
