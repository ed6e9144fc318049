"""Task 'video': object-centric learning on moving scenes with SAVi (Kipf et al., ICLR 2022); being built."""
