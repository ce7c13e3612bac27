"""Systems that are no model of ours, the yardsticks of the reports: ``phonetisaurus``."""
