replace "text";
