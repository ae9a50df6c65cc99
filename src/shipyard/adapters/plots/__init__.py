"""Plot files read from the workspace (``files``) and drawn into one HTML page (``render``)."""
