"""Reading the live environment: interpreter, installed distributions, CPU, GPU, framework builds."""
