mod deps;
mod hostile;
