"""Static report pages (HTML with inline SVG charts) shared by training and monitoring."""
