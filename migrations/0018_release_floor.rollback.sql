drop function maim.release_floor();
