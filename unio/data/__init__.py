"""The data path's lower half: sources and their records (the world, readers of official formats, any
`datasets` dataset), the task mixture, photometric augmentation, and the encoding of model inputs."""
