"""The synthetic shop by subsystem: one mixin per part of the simulation, combined by :mod:`shoplake.datagen.synthetic`."""
