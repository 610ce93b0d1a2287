-- Forgot the braces: returns a string.
return "listen = 0.0.0.0:8080"
