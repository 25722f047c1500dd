internal import IvyCore
