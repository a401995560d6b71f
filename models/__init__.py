"""What the model is: dims and constants, configuration hierarchy and priors, PyMC model builders."""
