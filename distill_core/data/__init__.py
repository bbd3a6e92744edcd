"""Data: the dataset registry (embedded, torchvision and image folders) and the augmentations."""
