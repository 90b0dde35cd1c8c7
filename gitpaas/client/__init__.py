"""The gitpaas CLI on another machine: a login (the server's URL and a token, kept 0600) and the
Platform API client that the commands use instead of the home when logged in."""
